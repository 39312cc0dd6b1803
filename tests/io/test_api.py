import partus.io


def test_all_names_exist_and_are_documented():
    assert len(partus.io.__all__) == len(set(partus.io.__all__))
    for name in partus.io.__all__:
        obj = getattr(partus.io, name)
        assert obj.__doc__, f"{name} has no docstring"
