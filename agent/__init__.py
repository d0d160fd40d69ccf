"""factory-agent: a rule-based inventory and maintenance agent for factories.

MQTT messages in, YAML rules applied, deduplicated actions and alerts out.
"""

__version__ = "0.1.0"
