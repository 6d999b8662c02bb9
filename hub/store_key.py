"""The key that encrypts the embedded nats-server's JetStream store at rest.

A random 256-bit key is made once into a file only its owner may read (``HUB_JS_KEY_FILE``; by
default ``jetstream.key`` in the credentials directory, never in the repository). nats-server takes
it from its environment (``key: $JS_KEY`` in the configuration it is given), so no configuration
file holds the key. A fingerprint beside the store catches a key that cannot open it (lost, or
another store's) before the server starts: nats-server itself would skip the streams it cannot
decrypt, and the hub would then create empty ones over them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
from pathlib import Path

from hub.config import HubSettings
from hub.errors import ConfigError
from hub.identity.authority import write_secret

log = logging.getLogger(__name__)

SETTING = "HUB_JS_KEY_FILE"
KEY_VARIABLE = "JS_KEY"  # the environment variable the server's configuration refers to
CIPHER = "chachapoly"
KEY_FILE_NAME = "jetstream.key"
FINGERPRINT_FILE = "store-key.sha256"
_KEY = re.compile(r"[A-Za-z0-9+/=._-]{32,512}")  # what nats-server reads back as one string


def store_key(settings: HubSettings) -> str:
    """The key of the embedded server's store: ``HUB_JS_KEY_FILE``'s, or one made once."""
    if settings.js_key_file is not None:
        return read_key(settings.js_key_file)
    return ensure_key(settings.credentials_store / KEY_FILE_NAME)


def ensure_key(path: Path) -> str:
    """The key in ``path``, made there first (random, mode 0600) when the file does not exist."""
    if not path.exists():
        draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        write_secret(draft, secrets.token_hex(32) + "\n")
        try:
            # link, not rename: of two processes making the key at once, the first one's stays
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            draft.unlink()
    return read_key(path)


def read_key(path: Path) -> str:
    """The key in ``path``, refused when others may read the file or it is not a usable key."""
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise ConfigError(SETTING, f"密钥文件 {path} 不存在") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(SETTING, f"密钥文件 {path} 无法读取：{exc}") from exc
    if mode & 0o077:
        raise ConfigError(
            SETTING, f"密钥文件 {path} 只能由所有者读写（现为 {mode:o}，请 chmod 600）"
        )
    if not _KEY.fullmatch(text):
        raise ConfigError(
            SETTING,
            f"密钥文件 {path} 须为一行 32 到 512 个字母、数字或 + / = . _ - "
            "（例如 openssl rand -hex 32 的输出）",
        )
    return text


def fingerprint(key: str) -> str:
    """What tells the key again without revealing it."""
    return hashlib.sha256(b"zhifa-hub jetstream store key\n" + key.encode()).hexdigest()


def is_encrypted(store_dir: Path) -> bool:
    """Whether any stream in ``store_dir`` was written encrypted (nats-server keeps its key)."""
    return any(store_dir.glob("jetstream/*/streams/*/meta.key"))


def guard_store(store_dir: Path, key: str | None) -> None:
    """Refuse to start a server on a store that ``key`` cannot open; remember the key's print."""
    marker = store_dir / FINGERPRINT_FILE
    if key is None:
        if is_encrypted(store_dir) or marker.exists():
            raise ConfigError(SETTING, f"{store_dir} 的 JetStream 存储已加密，启动时须提供其密钥")
        return
    if marker.exists():
        if marker.read_text(encoding="ascii").strip() != fingerprint(key):
            raise ConfigError(
                SETTING,
                f"此密钥打不开 {store_dir} 的 JetStream 存储（存储用另一把密钥加密）；"
                "请找回原来的密钥文件并让 HUB_JS_KEY_FILE 指向它",
            )
        return
    if is_encrypted(store_dir):  # encrypted before fingerprints were kept: cannot be told
        log.warning("natsd.store_key_unverified", extra={"store": str(store_dir)})
        return
    marker.write_text(fingerprint(key) + "\n", encoding="ascii")  # new, or plaintext to convert
