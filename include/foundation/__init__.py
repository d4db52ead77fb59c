"""The foundation every stage stands on: config, settings, storage, tracking, metrics, errors,
logging and redaction, and the payloads tasks hand each other. Imports no stage."""
