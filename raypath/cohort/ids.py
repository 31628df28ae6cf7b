"""Identifiers that end up in file names (feature files, tile caches) must be safe as file names."""

MAX_ID_LENGTH = 200


def unsafe_reason(value: str) -> str | None:
    """Why `value` cannot be used as a file name component, or None when it is safe.

    Rejects path separators and drive colons (a hostile id could write outside the output
    directory), a leading dot ('.', '..', hidden files), control characters and surrounding
    whitespace (invisible differences between ids), and very long names.
    """
    if not value:
        return "empty id"
    if "/" in value or "\\" in value:
        return "contains a path separator"
    if ":" in value:
        return "contains ':' (drive letters, URLs)"
    if value.startswith("."):
        return "starts with '.' ('..', hidden files)"
    if ".." in value:
        return "contains '..'"
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        return "contains a control character"
    if value != value.strip():
        return "has leading or trailing whitespace"
    if len(value) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters"
    return None
