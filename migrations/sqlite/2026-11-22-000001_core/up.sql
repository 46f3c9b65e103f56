-- Timestamps are unix milliseconds (BIGINT) so both backends store the same values.
CREATE TABLE chats (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    -- seq of the newest message; the next message gets last_seq + 1 in the same transaction
    last_seq    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE chat_members (
    chat_id       TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL,
    -- unread = chats.last_seq - last_read_seq: O(1), no counting scan
    last_read_seq BIGINT NOT NULL DEFAULT 0,
    joined_at     BIGINT NOT NULL,
    -- joining order within the chat (the creator is 0); participants are listed by it
    position      BIGINT NOT NULL,
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX chat_members_by_user ON chat_members (user_id);

CREATE TABLE messages (
    id                TEXT PRIMARY KEY NOT NULL,
    chat_id           TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    seq               BIGINT NOT NULL,
    sender_id         TEXT NOT NULL,
    content           TEXT NOT NULL,
    attachments       TEXT NOT NULL DEFAULT '[]',
    reply_to          TEXT,
    client_message_id TEXT,
    created_at        BIGINT NOT NULL,
    edited_at         BIGINT,
    deleted_at        BIGINT,
    UNIQUE (chat_id, seq)
);
CREATE UNIQUE INDEX messages_idempotency
    ON messages (chat_id, sender_id, client_message_id)
    WHERE client_message_id IS NOT NULL;
