"""Files written whole or not at all, as the C++ side writes them (weights/atomic_file.h)."""
import contextlib
import os
import pathlib
import socket


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path in `path`'s folder, unique to this process, with `path`'s
    extension last (writers that choose the format by it still do). When the block ends
    normally the file is flushed to the disk and renamed to `path`; when it raises, the
    temporary is removed and `path` keeps what it held."""
    path = pathlib.Path(path)
    temporary = path.with_name(f'.{path.stem}.partial-{socket.gethostname()}-{os.getpid()}-'
                               f'{os.urandom(4).hex()}{path.suffix}')
    try:
        yield temporary
        with open(temporary, 'rb') as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent if str(path.parent) else '.', os.O_RDONLY)
    try:
        os.fsync(folder)
    except OSError:
        pass  # the file is complete under its name; only the rename's durability is at stake
    finally:
        os.close(folder)
