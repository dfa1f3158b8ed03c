// The tutorial's flow through openapi-fetch, typed by what openapi-typescript generated from
// the live document (api.d.ts), written as a consumer would (integers for pages), with
// nothing edited (docs/API.md §8.9). tests/test_clients.py compiles it with `tsc --strict`
// and runs it: `node flow.js BASE_URL ADMIN_EMAIL PASSWORD`; it prints each step, then
// `flow ok`.
import createClient from "openapi-fetch";
import type { paths } from "./api.js";

const [baseUrl, adminEmail, password] = process.argv.slice(2);
const client = createClient<paths>({ baseUrl });

function check(condition: unknown, what: string): asserts condition {
  if (!condition) {
    throw new Error(`failed: ${what}`);
  }
}

function step(name: string): void {
  console.log(name);
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
const suffix = Math.random().toString(36).slice(2, 10);
const email = `flow-ts-${suffix}@example.com`;

step("register");
const registered = await client.POST("/api/v1/auth/register", { body: { email, password } });
check(registered.response.status === 201, "register: 201");
check(registered.data?.message === "successfully registered", "register: body");

step("login");
const session = await client.POST("/api/v1/auth/login", { body: { email, password } });
check(session.data, "login");
const user = bearer(session.data.access_token);

step("current user");
const me = await client.GET("/api/v1/auth/user", { headers: user });
check(me.data?.email === email && me.data.admin === false, "current user");

step("create widget (admin)");
const adminSession = await client.POST("/api/v1/auth/login", {
  body: { email: adminEmail, password },
});
check(adminSession.data, "admin login");
const admin = bearer(adminSession.data.access_token);
const name = `ts-${suffix}`;
const created = await client.POST("/api/v1/widgets", {
  body: { name, info_url: "https://www.example.com/widget", deadline: "2099-12-31" },
  headers: admin,
});
check(created.response.status === 201, "create: 201");
check(created.response.headers.get("Location")?.endsWith(`/api/v1/widgets/${name}`), "Location");
const refused = await client.POST("/api/v1/widgets", {
  body: { name: `${name}-x`, info_url: "https://www.example.com/", deadline: "2099-12-31" },
  headers: user,
});
check(refused.response.status === 403 && refused.error?.message, "create as a user: 403");
const kept = await client.PATCH("/api/v1/users/{public_id}", {
  params: { path: { public_id: me.data.public_id } },
  body: { disabled: false },
  headers: admin,
});
check(kept.data?.disabled === false, "PATCH a user");

step("list a page");
const page = await client.GET("/api/v1/widgets", {
  params: { query: { page: 1, per_page: 10 } },
  headers: user,
});
const offset = page.data;
check(offset !== undefined && "page" in offset, "list: an offset page");
if (offset === undefined || !("page" in offset)) throw new Error("unreachable");
check(offset.page === 1 && offset.items_per_page === 10, "list: page 1 of 10");
check(offset.items.some((widget) => widget.name === name), "list: the widget");
check(page.response.headers.get("Total-Count") === String(offset.total_items), "Total-Count");

step("list a cursor page, sorted and filtered");
const walk = await client.GET("/api/v1/widgets", {
  params: { query: { cursor: "", per_page: 5, sort: "-deadline", passed: false } },
  headers: user,
});
const first = walk.data;
check(first !== undefined && "next_cursor" in first, "cursor: a cursor page");
if (first === undefined || !("next_cursor" in first)) throw new Error("unreachable");
check(first.items.some((widget) => widget.name === name), "cursor: the widget");
check(first.links.self.includes("sort=-deadline&passed=false"), "cursor: links keep the query");

step("get");
const got = await client.GET("/api/v1/widgets/{name}", { params: { path: { name } }, headers: user });
check(got.data?.name === name && got.data.deadline === "12/31/99 11:59:59 PM UTC", "get");
const etag = got.response.headers.get("ETag");
check(etag, "ETag");

step("update with If-Match");
const updated = await client.PUT("/api/v1/widgets/{name}", {
  params: { path: { name }, header: { "If-Match": etag } },
  body: { info_url: "https://www.example.com/v2", deadline: "2099-12-30" },
  headers: admin,
});
check(updated.response.status === 200 && updated.data?.status === "success", "update");
const newEtag = updated.response.headers.get("ETag");
check(newEtag && newEtag !== etag, "update: a new ETag");
const stale = await client.PUT("/api/v1/widgets/{name}", {
  params: { path: { name }, header: { "If-Match": etag } },
  body: { info_url: "https://www.example.com/v3", deadline: "2099-12-30" },
  headers: admin,
});
check(stale.response.status === 412, "update with a stale ETag: 412");

step("delete");
const deleted = await client.DELETE("/api/v1/widgets/{name}", {
  params: { path: { name }, header: { "If-Match": newEtag } },
  headers: admin,
});
check(deleted.response.status === 204, "delete");
const gone = await client.GET("/api/v1/widgets/{name}", { params: { path: { name } }, headers: user });
check(gone.response.status === 404, "deleted: 404");

step("refresh");
const refreshed = await client.POST("/api/v1/auth/refresh", {
  body: { refresh_token: session.data.refresh_token },
});
check(refreshed.data?.message === "successfully refreshed", "refresh");
const renewed = bearer(refreshed.data.access_token);

step("logout");
const out = await client.POST("/api/v1/auth/logout", { headers: renewed });
check(out.data?.message === "successfully logged out", "logout");

step("refused after logout");
const after = await client.GET("/api/v1/auth/user", { headers: renewed });
check(after.response.status === 401, "after logout: 401");
check(after.error?.message === "Token blacklisted. Please log in again.", "after logout: body");
console.log("flow ok");

// Never called: what the generated types refuse. tsc fails on an unused @ts-expect-error, so
// each of these must stay a type error.
export async function refusedByTheTypes(): Promise<void> {
  // @ts-expect-error page is an integer, not text
  await client.GET("/api/v1/widgets", { params: { query: { page: "1" } } });
  // @ts-expect-error per_page is one of 5, 10, 25, 50, 100
  await client.GET("/api/v1/widgets", { params: { query: { per_page: 7 } } });
  const path = { public_id: "x" };
  // @ts-expect-error the body is an object of booleans, not anything
  await client.PATCH("/api/v1/users/{public_id}", { params: { path }, body: 42 });
  // @ts-expect-error admin is a boolean
  await client.PATCH("/api/v1/users/{public_id}", { params: { path }, body: { admin: "yes" } });
}
