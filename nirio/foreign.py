class ForeignReader:
    pass
