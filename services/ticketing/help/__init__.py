"""The help centre: FAQ articles in zh and en, search, ticket deflection and search gaps."""
