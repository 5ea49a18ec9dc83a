"""Planner and collector logic: plain functions the thin handlers in functions/ delegate to."""
