"""What pysyncobj writes and sends, made cheap (kvstore/raft_encoding.py), stays readable as before."""
import gzip
import os
import pickle
import zlib

import pytest
from pysyncobj import pickle as raft_pickle

import kvstore.replica  # noqa: F401 - installs the encodings, as every master does
from kvstore.raft_encoding import COMPRESS_FROM, compress, snapshot_file, stored_zlib


@pytest.mark.parametrize("size", [0, 1, 600, 65535, 65536, 200_001])
def test_stored_blocks_are_a_zlib_stream_zlib_reads(size):
    data = os.urandom(size)
    assert zlib.decompress(stored_zlib(data)) == data
    assert zlib.decompress(stored_zlib(bytearray(data))) == data
    assert zlib.decompress(compress(data)) == data


def test_small_messages_go_uncompressed_big_ones_compressed():
    small, big = b"x" * (COMPRESS_FROM - 1), b"x" * COMPRESS_FROM
    assert len(compress(small)) > len(small) and len(compress(big)) < len(big) // 10


def test_pickles_carry_bytes_as_bytes_and_old_pickles_still_load():
    blob = os.urandom(1000)
    assert raft_pickle.loads(raft_pickle.dumps({"b": blob})) == {"b": blob}
    assert raft_pickle.dumps(blob)[:2] == b"\x80\x05"  # protocol 5: no latin-1 str on the way
    assert raft_pickle.loads(pickle.dumps({"b": blob}, 2)) == {"b": blob}  # a journal written before


def test_snapshot_files_are_written_plain_and_gzipped_ones_from_before_still_read(tmp_path):
    state = {"keys": [os.urandom(100) for _ in range(50)]}
    plain, zipped = tmp_path / "plain", tmp_path / "zipped"
    with open(plain, "wb") as f, snapshot_file(f, mode="wb") as g:
        raft_pickle.dump(state, g)
    with gzip.open(zipped, "wb") as g:
        raft_pickle.dump(state, g)
    assert plain.read_bytes()[:2] != b"\x1f\x8b"
    for path in (plain, zipped):
        with open(path, "rb") as f, snapshot_file(f) as g:
            assert raft_pickle.load(g) == state
