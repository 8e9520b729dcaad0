"""Multi-client TCP echo servers: forking, select and epoll (see server/__main__.py)."""
