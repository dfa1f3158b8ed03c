-- Widgets, owned by users.

CREATE TABLE widgets (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Stored lower-cased by the service (validated there), so UNIQUE is case-insensitive.
    name       text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    info_url   text        NOT NULL CHECK (length(info_url) <= 255),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deadline   timestamptz NOT NULL,
    owner_id   bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX widgets_owner_id_idx ON widgets (owner_id);
