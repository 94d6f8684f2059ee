"""A user's own Locust file, as they would write it for the fixture app (no harness imports)."""

from locust import FastHttpUser, constant, task


class ItemsUser(FastHttpUser):
    wait_time = constant(0)

    @task(3)
    def awaiting(self):
        self.client.get("/items/awaiting", name="awaiting")

    @task(1)
    def sync(self):
        self.client.get("/items/sync", name="sync")
