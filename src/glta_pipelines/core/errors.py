"""One error type for bad user input, with a message that says what to fix."""

from __future__ import annotations


class InputError(ValueError):
    """Bad data or parameters supplied by the user.

    The message always names *where* (file, column or parameter), *what was found* and
    *what was expected*, so the last line a user sees says what to fix.
    """

    def __init__(self, where: str, found: object, expected: str) -> None:
        self.where, self.found, self.expected = where, found, expected
        super().__init__(f"{where}: found {found}; expected {expected}.")

    def __reduce__(self):  # rebuilt from its three parts (ParallelRunner sends errors between processes)
        return type(self), (self.where, self.found, self.expected)
