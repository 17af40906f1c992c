"""Fine-tuning transport: the learner's ROUTER server and the robot actor's DEALER client, CurveZMQ on both.

* :class:`SequenceTracker` (no sockets): the learner's exactly-once bookkeeping per actor: ``next_expected``
  (everything below is in the replay buffer) and ``committed`` (everything below is in a checkpoint).
* :class:`LearnerServer`: ROUTER + CURVE server; a ZAP handler (pyzmq ``ThreadAuthenticator``) admits only
  the client public keys found in ``allowed_clients_dir``; an ``actor_id`` is bound to the key that first
  used it. Driven by the learner's loop through :meth:`LearnerServer.serve_once` (one thread).
* :class:`ActorClient`: DEALER + CURVE client with a background I/O thread. The control loop calls only
  :meth:`ActorClient.submit` (never blocks on I/O) and :meth:`ActorClient.take_policy`; the thread spools to
  disk (:class:`finetune.spool.Spool`), sends, handles acks (go-back-N on a learner restart), prunes below
  the learner's commit and keeps the learner's newest verified policy.

The algorithm, frames and threat model are in ``finetune/PROTOCOL.md``. Tests:
``.venv/bin/python -m pytest tests/finetune/test_transport.py -q``; throughput: ``benchmarks/transport.py``.
"""

from __future__ import annotations

from finetune.client import ActorClient
from finetune.server import ZAP_DOMAIN, LearnerServer, SequenceTracker

__all__ = ["ZAP_DOMAIN", "ActorClient", "LearnerServer", "SequenceTracker"]
