"""Refusals: the named reasons a service refuses a command. Part of the public contract:
a refusal becomes a `CommandRejected` event carrying `code` and `reason`."""


class CommandRefused(Exception):
    """A command broke a business rule. `code` is stable (UPPER_SNAKE); `reason` is for people."""

    code: str = "COMMAND_REFUSED"

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


class ChainOfIdentityMismatch(CommandRefused):
    """The product named does not belong to the subject named. Always refused, never warned."""

    code = "CHAIN_OF_IDENTITY_MISMATCH"


class Unauthenticated(CommandRefused):
    """A command whose credential is missing, not valid (forged, expired, not this system's)
    or not the actor's, or whose principal is unknown or disabled (issue 8, item 4). Nothing
    it claims is trusted: its refusal is recorded under the refusing service's name."""

    code = "UNAUTHENTICATED"


class Forbidden(CommandRefused):
    """An authenticated principal whom the policy does not allow this command, for this
    centre (issue 8, item 3)."""

    code = "FORBIDDEN"
