"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives, for notification tests."""

from __future__ import annotations

import contextlib
import email
import socket
import time
from email.message import Message


class Inbox:
    def __init__(self):
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"

    def wait(self, count: int, timeout: float = 30) -> list[Message]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.messages

    @staticmethod
    def text(msg: Message) -> str:
        parts = msg.walk() if msg.is_multipart() else [msg]
        return "\n".join(
            p.get_payload(decode=True).decode() for p in parts if p.get_content_maintype() == "text"
        )


@contextlib.contextmanager
def smtp_server():
    """(inbox, Airflow connection URI) of a plain SMTP server on 127.0.0.1, no TLS, no auth."""
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield (
            inbox,
            f"smtp://127.0.0.1:{port}?disable_tls=true&disable_ssl=true&from_email=ct-loop%40example.com",
        )
    finally:
        controller.stop()
