"""`python -m gan_dist` runs the `gan` command line."""

from gan_dist.cli import main

if __name__ == "__main__":
    main()
