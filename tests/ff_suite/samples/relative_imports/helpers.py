"""A module imported relatively by main.py."""

RESULT = "success"
