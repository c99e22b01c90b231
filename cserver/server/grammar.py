"""Pieces of the HTTP grammar shared by the parser and the response writer."""

# RFC 9110 section 5.6.2: a token (a method, a header name), as a regex over str.
TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
