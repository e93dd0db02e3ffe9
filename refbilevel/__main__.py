from refbilevel.cli import main

raise SystemExit(main())
