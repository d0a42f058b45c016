"""Where the demo keeps its state, on a local lakehouse or one in an object store.

The demo remembers which simulated days ran (``<home>/_demo/state.json``) so a second
``tracelake demo`` continues the story; on the scale-out profile the lakehouse is an ``s3a://``
prefix, so the state lives there too (written whole: a PUT replaces an object atomically, as a
rename replaces a local file) and ``--fresh`` deletes that prefix.
"""

from __future__ import annotations

from pathlib import Path

from tracelake.lineage.settings import arrow_filesystem, is_local_uri, to_local_path

__all__ = ["delete_tree", "has_content", "read_text", "write_text"]


def read_text(uri: str) -> str | None:
    """The file's text, or None when it does not exist."""
    if is_local_uri(uri):
        path = to_local_path(uri)
        return path.read_text() if path.exists() else None
    from pyarrow import fs as pafs

    filesystem, path = arrow_filesystem(uri)
    if filesystem.get_file_info(path).type != pafs.FileType.File:
        return None
    with filesystem.open_input_stream(path) as fh:
        return fh.read().decode()


def write_text(uri: str, text: str) -> None:
    """Replace the file whole (never half a state file, whatever kills the process)."""
    if is_local_uri(uri):
        path = to_local_path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return
    filesystem, path = arrow_filesystem(uri)
    with filesystem.open_output_stream(path) as fh:
        fh.write(text.encode())


def has_content(uri: str, ignore: str = "") -> bool:
    """Does the folder (or prefix) hold anything but an entry named ``ignore``?"""
    if is_local_uri(uri):
        root = Path(to_local_path(uri))
        return root.is_dir() and any(p.name != ignore for p in root.iterdir())
    from pyarrow import fs as pafs

    filesystem, path = arrow_filesystem(uri)
    infos = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return any(i.base_name != ignore for i in infos)


def delete_tree(uri: str) -> None:
    if is_local_uri(uri):
        import shutil

        shutil.rmtree(to_local_path(uri))
        return
    filesystem, path = arrow_filesystem(uri)
    filesystem.delete_dir_contents(path, missing_dir_ok=True)
