"""Data-loss reports: built from facts as plain data (pure), rendered as Markdown and JSON."""
