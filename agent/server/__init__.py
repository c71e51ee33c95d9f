"""The node agent's HTTPS server: container logs, exec and attach, health, pods and metrics.

`app` holds the server and its routes; `containers` finds a pod's containers by their CRI
labels; `logs` turns CRI log files back into text; `streaming` speaks the client's WebSocket
protocol; `upstream` and `spdy` speak to containerd's streaming server.
"""

from agent.server.app import AgentServer, server_context

__all__ = ["AgentServer", "server_context"]
