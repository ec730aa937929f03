import pytest

from modelport.protowire import decode_varint, encode_key, encode_varint


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**31, 2**63 - 1])
def test_varint_round_trip(n):
    data = b"\x00" + encode_varint(n) + b"\x00"
    assert decode_varint(data, 1) == (n, len(data) - 1)


def test_keys_and_malformed_varints():
    assert encode_key(7) == b"\x3a" and encode_key(1, 0) == b"\x08"
    with pytest.raises(ValueError, match="truncated"):
        decode_varint(b"\x80\x80", 0)
    with pytest.raises(ValueError, match="longer"):
        decode_varint(b"\xff" * 12, 0)
