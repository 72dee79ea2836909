"""The warm engine: `moodsic serve` keeps the models loaded behind a local socket.

- `server`: the process (`serve_forever`), one request at a time, models cached by the
  settings they were loaded with.
- `client`: what `moodsic score` (and so the Blender add-on, which runs it) uses when a
  server answers; without one, everything runs in-process as before.
- `protocol`: where the socket and the token live, and the JSON-lines messages.

Only a Unix socket in a private folder, or TCP on 127.0.0.1, is ever listened on; every
request carries the user's token (a 0600 file beside the socket).
"""
