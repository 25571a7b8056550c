"""Tests of puka-asyncio against a real broker, each run on the asyncio loop and on uvloop."""
