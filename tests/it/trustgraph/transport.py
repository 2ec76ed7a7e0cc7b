"""How the TrustGraph scenarios reach iamd.

Over Kafka: TrustGraph's own ``AsyncKafkaBackend`` (aiokafka), unchanged.

Over HTTP: TrustGraph has no HTTP transport for its IAM client, so ``HttpBackend`` plays the
part of a pub/sub backend for ``RequestResponseClient``: a request is encoded with
TrustGraph's own codec (``dataclass_to_dict``, every field present), posted to iamd's
``POST /api/v1/iam`` with the gateway secret, and the reply decoded with TrustGraph's
``dict_to_dataclass`` (unknown keys dropped, missing ones defaulted) before it reaches the
client, correlated by the ``id`` property as on a response topic.
"""

import asyncio
import json

import aiohttp

from trustgraph.base.serialization import dataclass_to_dict, dict_to_dataclass


class _Message:
    def __init__(self, value, properties):
        self._value = value
        self._properties = properties

    def value(self):
        return self._value

    def properties(self):
        return self._properties


class _Producer:
    def __init__(self, backend):
        self._backend = backend

    async def send(self, message, properties=None):
        body = json.dumps(dataclass_to_dict(message)).encode("utf-8")
        reply = await self._backend.post(body)
        for queue in list(self._backend.consumers):
            await queue.put((reply, dict(properties or {})))

    async def close(self):
        pass


class _Consumer:
    def __init__(self, backend, schema):
        self._backend = backend
        self._schema = schema
        self._queue = asyncio.Queue()
        backend.consumers.append(self._queue)

    async def receive(self):
        reply, properties = await self._queue.get()
        return _Message(dict_to_dataclass(reply, self._schema), properties)

    async def acknowledge(self, message):
        pass

    async def negative_acknowledge(self, message):
        pass

    async def close(self):
        if self._queue in self._backend.consumers:
            self._backend.consumers.remove(self._queue)


class HttpBackend:
    """A TrustGraph async pub/sub backend whose only topic pair is iamd's HTTP endpoint."""

    def __init__(self, url, secret):
        self.url = url.rstrip("/") + "/api/v1/iam"
        self.secret = secret
        self.consumers = []
        self._session = None

    async def post(self, body):
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {
            "Authorization": f"Bearer {self.secret}",
            "Content-Type": "application/json",
        }
        async with self._session.post(self.url, data=body, headers=headers) as resp:
            text = await resp.text()
            try:
                return json.loads(text)
            except ValueError:
                raise RuntimeError(f"iamd answered {resp.status}: {text[:200]}")

    async def create_producer(self, topic, schema, **options):
        return _Producer(self)

    async def create_consumer(self, topic, subscription, schema, initial_position="latest", **options):
        return _Consumer(self, schema)

    async def close(self):
        if self._session is not None:
            await self._session.close()
            self._session = None


def backend(mode, url, secret, brokers):
    if mode == "http":
        return HttpBackend(url, secret)
    from trustgraph.base.async_kafka_backend import AsyncKafkaBackend

    return AsyncKafkaBackend(bootstrap_servers=brokers)
