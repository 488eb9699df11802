"""Imaging: locate, decode (at reduced resolution when it helps) and render pixel data."""
