"""Server interceptors: the call context outermost, then the gates (deadline, auth,
rate limit, admission); transport/app.py chains them in that order."""
