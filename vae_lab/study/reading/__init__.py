"""Reading studies back: the trials as rows, a study's status, the leaderboard and figures, and the
report's story. Nothing here trains or crowns; the runtime (`execution`) writes what this reads."""
