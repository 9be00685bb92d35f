"""gunicorn's gthread worker, taking new connections only in its turn (project.server.balance)."""

from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from project.server.balance import RECHECK_SECONDS, TakesTurns


class BalancedThreadWorker(TakesTurns, ThreadWorker):
    def run(self) -> None:
        self.turn.serving(self.nr_conns)
        super().run()

    def _publish(self) -> None:
        if self.alive:
            self.turn.publish(self.nr_conns)
        else:
            self.turn.stopping()

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self.turn.mine(self.nr_conns))

    def accept(self, listener: Any) -> None:
        super().accept(listener)
        self._publish()
        if not self.turn.mine(self.nr_conns):
            self.set_accept_enabled(False)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        self._publish()
        super().wait_for_and_dispatch_events(timeout if self._accepting else min(timeout, RECHECK_SECONDS))
