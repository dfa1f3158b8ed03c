"""The floor: a plain Falcon app that answers a small JSON body, served by the same gunicorn
settings as the service. The service's throughput is reported as a ratio to this."""

import falcon


class Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"message": "hello"}


app = falcon.App()
app.add_route("/hello", Hello())
