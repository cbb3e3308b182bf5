"""Test helpers shared by several test folders (loopback fault servers and similar far-side fakes)."""
