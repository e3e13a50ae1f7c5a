"""Reports: data-loss and risk reports built from facts as plain data (pure), rendered as Markdown, JSON and
standalone HTML; and the auditor's evidence pack rendered as HTML and CSV."""
