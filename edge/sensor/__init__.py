"""Fingerprint sensor access: the ZFM packet codec, a simulated sensor on a pty, and the station's driver."""
