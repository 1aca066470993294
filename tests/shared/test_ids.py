"""`mlife_shared.ids.random_uuid`: version-4 UUIDs as `uuid.uuid4()` makes them, none twice, in threads and after a
fork."""

from __future__ import annotations

import os
import pickle
import threading
import uuid

from mlife_shared import ids
from mlife_shared.ids import random_uuid


def test_each_id_is_a_version_4_uuid_like_uuid4s() -> None:
    made = [random_uuid() for _ in range(3 * 256 + 5)]  # past a few refills of the pool
    assert len(set(made)) == len(made)
    for value in made:
        assert type(value) is uuid.UUID and value.version == 4 and value.variant == uuid.RFC_4122
        same = uuid.UUID(bytes=value.bytes, version=4)  # what uuid4() builds from the same 16 bytes
        assert (value == same and hash(value) == hash(same) and str(value) == str(same)
                and value.is_safe is same.is_safe)
        assert pickle.loads(pickle.dumps(value)) == value and uuid.UUID(str(value)) == value
    # the 122 random bits vary: every hex digit but the version's and the variant's takes many values
    digits = [{str(v).replace("-", "")[i] for v in made} for i in range(32)]
    assert all(len(d) >= 8 for i, d in enumerate(digits) if i not in (12, 16))
    assert digits[12] == {"4"} and digits[16] <= set("89ab")


def test_threads_never_get_the_same_id() -> None:
    got: list[list[uuid.UUID]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def draw(out: list[uuid.UUID]) -> None:
        start.wait()
        out.extend(random_uuid() for _ in range(5000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [v for out in got for v in out]
    assert len(set(every)) == len(every) == 40_000


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    random_uuid()  # the parent has ids read ahead in its pool
    ahead = list(ids._ids)  # what the parent would hand out next (taken, so the parent goes on with a fresh pool)
    ids._ids = iter(ahead)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first ids, to the parent
        try:
            os.write(write, b"".join(random_uuid().bytes for _ in range(4)))
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64)
    os.close(read)
    os.waitpid(pid, 0)
    child_ids = {uuid.UUID(bytes=child[i:i + 16]) for i in range(0, 64, 16)}
    assert len(child_ids) == 4
    assert not child_ids & {uuid.UUID(int=v) for v in ahead}
