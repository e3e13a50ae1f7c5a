"""What the web server keeps between requests: the settings, one context (its configuration re-read when a job or
policy file changes, as the daemon does) and the runner of background tasks."""

from __future__ import annotations

import threading
import time

from fastapi import Request

from replica.actions.context import Context
from replica.daemon.files import ConfigurationWatcher
from replica.settings import Settings
from replica.web.tasks import TaskRunner

RELOAD_LOOK_SECONDS = 1.0


class WebState:
    """The server's context and task runner."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context = Context(settings)
        self._watcher = ConfigurationWatcher(settings.jobs_dir, settings.policies_dir)
        self._lock = threading.Lock()
        self._looked_at = time.monotonic()
        self.tasks = TaskRunner(settings.web_workers)

    def context(self) -> Context:
        """Return the current context: a new one (same catalog and clients) once a job or policy file changed (seen
        within a second), so a request sees the files as they are; running tasks keep the configuration they started
        with."""
        with self._lock:
            # At most one look a second: the look stats every job file (10,000 of them at scale), and a page asks
            # for the context several times.
            now = time.monotonic()
            if now - self._looked_at >= RELOAD_LOOK_SECONDS:
                self._looked_at = now
                if self._watcher.changed():
                    self._context = self._context.reloaded()
            return self._context


def web_state(request: Request) -> WebState:
    """Return the state of the server answering `request`."""
    state: WebState = request.app.state.web
    return state
