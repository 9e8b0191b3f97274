"""python -m bench.peers.django_admin.load --url URL --users N [--seed S]

Fresh database, Django's migrations, N people of bench.population in bulk, the superuser,
ANALYZE; see bench.peers.django_admin.loading. (The code lives there so that the package's
`load` is the function, not this module.)
"""

from bench.peers.django_admin.loading import main

if __name__ == "__main__":
    main()
