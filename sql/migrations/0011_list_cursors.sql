-- Cursor pages, sorting and filters on the widget and user lists (docs/API.md §8.7).
--
-- Every sort order has an index that returns it, ties broken by name: a keyset page
-- (`WHERE (sort key, name) > (...)`) then reads only its own rows however deep it is, and a
-- descending sort reads the same index backwards. The owner filter has its own index (which
-- also serves deleting a user's widgets, so it replaces widgets_owner_id_idx); a name prefix
-- is a range of the names' index; deadline filters are a range of the deadline index.
CREATE INDEX widgets_deadline_name_idx ON widgets (deadline, name);
CREATE INDEX widgets_created_at_name_idx ON widgets (created_at, name);
CREATE INDEX widgets_owner_name_idx ON widgets (owner_id, name);
DROP INDEX widgets_owner_id_idx;

-- (Users' cursor pages, in registration order, read users_registered_on_idx.)

-- The one query of a sorted or filtered widget page, as text: only the conditions a request
-- uses are in it (the service plans every statement generically, and a generic plan of
-- `($1 IS NULL OR ...)` can use no index). The text is built from fixed fragments and the
-- sort column from the fixed list below; every value is a parameter ($1..$8, see widget_list).
-- `counting`: the query counting the filtered widgets instead of returning a page.
CREATE FUNCTION widget_list_sql(
    sort_key text, descending boolean, after boolean, deadline_from boolean,
    deadline_to boolean, by_owner boolean, by_prefix boolean, counting boolean
) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    col text := CASE sort_key WHEN 'name' THEN 'name' WHEN 'deadline' THEN 'deadline'
                              WHEN 'created_at' THEN 'created_at' END;
    cmp text := CASE WHEN descending THEN '<' ELSE '>' END;
    dir text := CASE WHEN descending THEN ' DESC' ELSE '' END;
    sql_text text;
BEGIN
    IF col IS NULL THEN
        RAISE EXCEPTION 'widget_list_sql: unknown sort key %', sort_key;
    END IF;
    IF counting THEN
        sql_text := 'SELECT count(*) FROM widgets w WHERE true';
    ELSE
        sql_text := 'SELECT w.id, w.name, w.info_url, w.created_at, w.deadline, '
                 'u.email AS owner_email, u.public_id::text AS owner_public_id '
                 'FROM widgets w JOIN users u ON u.id = w.owner_id WHERE true';
    END IF;
    IF after AND NOT counting THEN
        IF col = 'name' THEN
            sql_text := sql_text || format(' AND w.name %s $2', cmp);
        ELSE
            sql_text := sql_text || format(' AND (w.%I, w.name) %s ($1, $2)', col, cmp);
        END IF;
    END IF;
    IF deadline_from THEN
        sql_text := sql_text || ' AND w.deadline >= $3';
    END IF;
    IF deadline_to THEN
        sql_text := sql_text || ' AND w.deadline < $4';
    END IF;
    IF by_owner THEN
        sql_text := sql_text || ' AND w.owner_id = (SELECT id FROM users WHERE public_id = $5)';
    END IF;
    IF by_prefix THEN
        sql_text := sql_text || ' AND w.name LIKE $6';
    END IF;
    IF NOT counting THEN
        IF col = 'name' THEN
            sql_text := sql_text || format(' ORDER BY w.name%s', dir);
        ELSE
            sql_text := sql_text || format(' ORDER BY w.%I%s, w.name%s', col, dir, dir);
        END IF;
        sql_text := sql_text || ' OFFSET $7 LIMIT $8';
    END IF;
    RETURN sql_text;
END $$;

-- One page of widgets sorted by sort_key (descending: backwards, ties by name backwards too),
-- after the keyset (after_time, after_name) when after_name is not NULL (after_time: the
-- sort key's value; unused for the name sort), filtered by the deadline range
-- [deadline_from, deadline_to), the owner's public_id and a LIKE pattern on the name (NULL:
-- no such filter), skipping `skip` rows (offset pages), at most `take` rows.
-- EXECUTE plans the query with these values, as a custom plan, each time.
CREATE FUNCTION widget_list(
    sort_key text, descending boolean, after_time timestamptz, after_name text,
    deadline_from timestamptz, deadline_to timestamptz, owner uuid, name_like text,
    skip bigint, take bigint
) RETURNS TABLE (id bigint, name text, info_url text, created_at timestamptz,
                 deadline timestamptz, owner_email text, owner_public_id text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY EXECUTE widget_list_sql(
        sort_key, descending, after_name IS NOT NULL, deadline_from IS NOT NULL,
        deadline_to IS NOT NULL, owner IS NOT NULL, name_like IS NOT NULL, false)
    USING after_time, after_name, deadline_from, deadline_to, owner, name_like, skip, take;
END $$;

-- The number of widgets the filters keep (an offset page's total).
CREATE FUNCTION widget_list_count(
    deadline_from timestamptz, deadline_to timestamptz, owner uuid, name_like text
) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
    total bigint;
BEGIN
    EXECUTE widget_list_sql(
        'name', false, false, deadline_from IS NOT NULL, deadline_to IS NOT NULL,
        owner IS NOT NULL, name_like IS NOT NULL, true)
    USING NULL::timestamptz, NULL::text, deadline_from, deadline_to, owner, name_like,
          0::bigint, 0::bigint
    INTO total;
    RETURN total;
END $$;

-- The plan widget_list (or, counting, widget_list_count) runs for these values: what
-- tests/test_list_indexes.py reads, and what an operator asks when a list page is slow.
CREATE FUNCTION widget_list_plan(
    sort_key text, descending boolean, after_time timestamptz, after_name text,
    deadline_from timestamptz, deadline_to timestamptz, owner uuid, name_like text,
    skip bigint, take bigint, counting boolean
) RETURNS SETOF text LANGUAGE plpgsql VOLATILE AS $$  -- EXPLAIN needs VOLATILE
BEGIN
    RETURN QUERY EXECUTE 'EXPLAIN ' || widget_list_sql(
        sort_key, descending, after_name IS NOT NULL, deadline_from IS NOT NULL,
        deadline_to IS NOT NULL, owner IS NOT NULL, name_like IS NOT NULL, counting)
    USING after_time, after_name, deadline_from, deadline_to, owner, name_like, skip, take;
END $$;
