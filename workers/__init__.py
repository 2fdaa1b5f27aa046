"""Process wiring: the control-plane worker entry point (`navarch-worker`)."""
