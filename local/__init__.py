"""Local stand-ins for the outside world: the Engagement API emulator and the Docker-free stack."""
