"""Push delivery: FCM HTTP v1 and Web Push (VAPID) over one keep-alive HTTP session per worker."""
