"""Fault tests: a private broker node, a TCP fault proxy, a hostile fake broker."""
