"""The record's cryptography against the standards' own examples, and refusals of forgeries."""

from __future__ import annotations

import pytest

from subscribers.signing import (
    Sm2Signer,
    digest,
    new_signer,
    signer_of,
    signing_input,
    sm2_e,
    sm2_za,
    sm3_digest,
    verify,
)

# GB/T 32918.2-2016 (= GM/T 0003.2) Annex A: the example curve over F_p (256 bits), signer
# ALICE123@YAHOO.COM signing "message digest"
EXAMPLE_CURVE = {
    "p": "8542D69E4C044F18E8B92435BF6FF7DE457283915C45517D722EDB8B08F1DFC3",
    "a": "787968B4FA32C3FD2417842E73BBFEFF2F3C848B6831D7E0EC65228B3937E498",
    "b": "63E4C6D3B23B0C849CF84241484BFE48F61D59A5B16BA06E6E12D1DA27C5249A",
    "g": "421DEBD61B62EAB6746434EBC3CC315E32220B3BADD50BDC4C4E6C147FEDD43D"
    "0680512BCBB42C07D47349D2153B70C4E5D7FDFCBFA36EA1A85841B9E46E09A2",
    "n": "8542D69E4C044F18E8B92435BF6FF7DD297720630485628D5AE74EE7C32E79B7",
}
D_A = "128B2FA8BD433C6C068C8D803DFF79792A519A55171B1B650C23661D15897263"
P_A = (
    "0AE4C7798AA0F119471BEE11825BE46202BB79E2A5844495E97C04FF4DF2548A"
    "7C0240F88F1CD4E16352A73C17B7F16F07353E53A176D684A9FE0C6BB798E857"
)
ID_A = b"ALICE123@YAHOO.COM"
Z_A = "F4A38489E32B45B6F876E3AC2168CA392362DC8F23459C1D1146FC3DBFB7BC9A"
E = "B524F552CD82B8B028476E005C377FB19A87E6FC682D48BB5D42E3D9B9EFFE76"
K = "6CB28D99385C175C94F94E934817663FC176D925DD72B727260DBAAE1FB2F96F"
R = "40F1EC59F793D9F49E09DCEF49130D4194F79FB1EED2CAA55BACDB49C4E755D1"
S = "6FC6DAC32C5D5CF10C77DFB20F7C2EB667A457872FB09EC56327A67EC7DEEBE7"


def test_sm3_gives_the_examples_of_gb_t_32905() -> None:
    assert sm3_digest(b"abc").hex() == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )
    assert sm3_digest(b"abcd" * 16).hex() == (
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    )


def test_sm2_signs_the_example_of_gb_t_32918_exactly() -> None:
    curve = {k.lower() if k in "nabg" else k: v for k, v in EXAMPLE_CURVE.items()}
    assert sm2_za(P_A, ID_A, curve).hex().upper() == Z_A
    assert sm2_e(b"message digest", P_A, ID_A, curve).hex().upper() == E
    signer = Sm2Signer(D_A, curve)
    assert signer.public.lower() == f"sm2:04{P_A}".lower()
    signature = bytes.fromhex(_raw(signer, curve))
    assert signature.hex().upper() == R + S


def _raw(signer: Sm2Signer, curve: dict[str, str]) -> str:
    """The example's signature: e computed with the example's identity, k as given."""
    crypt = signer._crypt
    found = crypt.sign(sm2_e(b"message digest", P_A, ID_A, curve), K)
    assert found is not None
    return str(found)


@pytest.mark.parametrize("suite", ["ed25519-sha256", "sm2-sm3"])
def test_a_signature_verifies_and_any_change_is_refused(suite: str) -> None:
    signer = signer_of(new_signer(suite))
    other = signer_of(new_signer(suite))
    data = "出岸镇 2026-11-26 签收".encode()
    signature = signer.sign(data)
    assert verify(signer.public, data, signature)
    assert not verify(signer.public, data + b" ", signature)  # the data changed
    assert not verify(other.public, data, signature)  # another key
    flipped = bytearray(data)
    flipped[0] ^= 1
    assert not verify(signer.public, bytes(flipped), signature)
    assert not verify(signer.public, data, "not base64!")
    assert not verify("rsa:1234", data, signature)  # an unknown algorithm is never valid


def test_the_suites_hash_with_sha256_or_sm3() -> None:
    assert digest("ed25519-sha256", b"abc").hex().startswith("ba7816bf")
    assert digest("sm2-sm3", b"abc").hex().startswith("66c7f0f4")


def test_a_signed_message_moved_to_another_subject_or_id_no_longer_verifies() -> None:
    signer = signer_of(new_signer("ed25519-sha256"))
    body = b'{"recipient": "renqiu-chuan"}'
    signature = signer.sign(signing_input("hub.deliver.renqiu-chuan", "b-1", body))
    assert verify(signer.public, signing_input("hub.deliver.renqiu-chuan", "b-1", body), signature)
    assert not verify(signer.public, signing_input("hub.deliver.renqiu-xx", "b-1", body), signature)
    assert not verify(
        signer.public, signing_input("hub.deliver.renqiu-chuan", "b-2", body), signature
    )
