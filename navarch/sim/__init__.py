"""The simulator: the scenario format (`scenario`), the runner (`runner`), reports
(`report`) and the fake world (`fakeworld`: the SQLite world of the fake cloud and the
simulated hosts, shared by the simulator, `navarch up`'s demo and the tests).

May import: `navarch.contracts`, `navarch.config`, `navarch.health`, the leaf modules.
"""
