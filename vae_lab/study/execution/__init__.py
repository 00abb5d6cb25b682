"""Running studies: admission, the session, the trial loop and settle, liveness and the reaper, the queue, workers."""
