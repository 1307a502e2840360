"""IterAlign's loop: red-team -> judge -> proposed principles -> rule events -> better answers."""
