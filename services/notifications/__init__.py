"""Notifications: e-mail and SMS to applicants at each milestone, in nb/en/ru, never twice."""
