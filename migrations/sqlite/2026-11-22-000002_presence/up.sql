-- When each user was last connected, so `lastSeen` survives a restart.
CREATE TABLE user_presence (
    user_id   TEXT PRIMARY KEY NOT NULL,
    last_seen BIGINT NOT NULL
);
