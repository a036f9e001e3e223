"""Host side of the framed serial protocol to microcontroller sensor nodes."""
