"""Where batches go and answers come from: a ``Channel``, as the pipeline drives it.

A batch is delivered in two steps with the pipeline's record of it between them: ``stage``
(a file under its temporary name; queue rows written, idempotent by request uid) and
``publish`` (the rename that lets the platform take it; a queue has nothing left to do). A run
that died between them asks ``staged`` whether the second step is still to do. Answers are
listed (``answers``), read (``fetch``) and put aside once applied (``archive``).

``FileChannel`` is the channel of a file server (``FileServer``: SFTP, FTP …); a database
queue implements ``Channel`` itself.
"""

import posixpath

PROCESSED = "processed"
FAILED = "failed"


class Channel:
    """One open connection to the platform's side. Every method MUST be implemented."""

    # A batch's note when a run finds it published by an earlier run that died before
    # recording that (``export.py``): what publishing is, in this channel's words.
    found_published = (
        "Delivered by an earlier run that stopped before recording it; not sent again."
    )

    def stage(self, name: str, payload) -> None:
        """Hand over a batch, not yet for the platform to take."""
        raise NotImplementedError

    def publish(self, name: str) -> None:
        """Let the platform take a staged batch, in one step: all of it or nothing."""
        raise NotImplementedError

    def staged(self, name: str) -> bool:
        """Whether a batch is staged and not published. Raises ``TransportError`` when the
        platform cannot say: "could not look" must never pass for "not there"."""
        raise NotImplementedError

    def answers(self) -> list[str]:
        """The answers waiting, in the order to apply them."""
        raise NotImplementedError

    def fetch(self, name: str):
        raise NotImplementedError

    def archive(self, name: str, *, refused: bool) -> None:
        """An answer is dealt with (applied, or refused): not listed again."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FileServer:
    """What a file channel needs from a file server. Paths are POSIX."""

    def listdir(self, directory: str) -> list[str]:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        """Whether a file is there; raises ``TransportError`` when the server cannot say."""
        raise NotImplementedError

    def put(self, data: bytes, path: str) -> None:
        """Write ``data`` to ``path``, complete when it returns."""
        raise NotImplementedError

    def rename(self, path: str, target: str) -> None:
        """Give a file its final name, in one step."""
        raise NotImplementedError

    def download(self, path: str) -> bytes:
        raise NotImplementedError

    def move(self, path: str, directory: str) -> None:
        """Move a file into ``directory`` (created if missing), keeping its name."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class FileChannel(Channel):
    """Batches uploaded to ``upload_dir`` as ``<name><partial_suffix>`` and renamed into
    place (the platform reads only final names); answers read from ``response_dir`` and moved
    to its ``processed/`` or ``failed/``."""

    found_published = (
        "Renamed into place by an earlier run that stopped before recording it; not uploaded again."
    )

    def __init__(self, server: FileServer, *, upload_dir, response_dir, is_answer, partial_suffix):
        self.server = server
        self.upload_dir, self.response_dir = upload_dir, response_dir
        self.is_answer, self.partial_suffix = is_answer, partial_suffix

    def _final(self, name: str) -> str:
        return posixpath.join(self.upload_dir, name)

    def stage(self, name: str, payload: bytes) -> None:
        self.server.put(payload, self._final(name) + self.partial_suffix)

    def publish(self, name: str) -> None:
        self.server.rename(self._final(name) + self.partial_suffix, self._final(name))

    def staged(self, name: str) -> bool:
        return self.server.exists(self._final(name) + self.partial_suffix)

    def answers(self) -> list[str]:
        return sorted(n for n in self.server.listdir(self.response_dir) if self.is_answer(n))

    def fetch(self, name: str) -> bytes:
        return self.server.download(posixpath.join(self.response_dir, name))

    def archive(self, name: str, *, refused: bool) -> None:
        self.server.move(
            posixpath.join(self.response_dir, name),
            posixpath.join(self.response_dir, FAILED if refused else PROCESSED),
        )

    def close(self) -> None:
        self.server.close()
