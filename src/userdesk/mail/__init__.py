"""Email: templates rendered from outbox rows, and the messages built from them."""

from userdesk.mail.render import (
    MailTemplateError,
    MissingContext,
    RenderedEmail,
    UnknownTemplate,
    build_message,
    message_id_for,
    render,
    template_names,
)

__all__ = [
    "MailTemplateError",
    "MissingContext",
    "RenderedEmail",
    "UnknownTemplate",
    "build_message",
    "message_id_for",
    "render",
    "template_names",
]
