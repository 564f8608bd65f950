# Namespaces on a node alone.
namespace
namespace exp
namespace
ns hosts
ns add-hosts bogus
namespace other echo one command there
namespace
clear namespace
namespace
clear namespace exp
clear namespace other
namespace
namespace "bad name"
namespace a,b
