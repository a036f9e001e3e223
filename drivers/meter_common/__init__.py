"""What the metering families on ``68``-framed lines share (DL/T 645, CJ/T 188): the frame skeleton."""
