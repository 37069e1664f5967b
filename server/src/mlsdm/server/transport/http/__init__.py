"""The second transport: Connect (JSON and binary) and gRPC-Web over HTTP/1.1
and HTTP/2, served by the Connect runtime on Hypercorn, beside native gRPC.

The same servicers answer both transports: a Connect handler builds the call's
CallInfo, runs the same checks and gates (the very instances the gRPC
interceptor runs, so a caller's rate-limit bucket and the admission slots are
shared) and calls the servicer method; errors leave with the same ErrorInfo.
"""
